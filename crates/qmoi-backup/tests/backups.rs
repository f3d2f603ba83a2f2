//! qmoi-backup against real archives made here with the tar, flate2, zstd and zip crates
//! (and a real restic repository when restic is installed).

use qmoi_testkit::{bin, read_json};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(targets: &str) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("backups")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("backup.toml"),
            format!("data_dir = \"data\"\nrestore_dir = \"data/restore\"\n{targets}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(bin("qmoi-backup"));
        c.current_dir(self.dir.path()).args(["--config", "backup.toml", "--report-dir", "logs", "--log-dir", "logs"]);
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap_or_else(|e| panic!("{e}"))
    }
    fn once(&self) -> Value {
        let out = self.run(&["--once"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        read_json(&self.path("logs/backup_latest.json")).unwrap_or_else(|| panic!("no report"))
    }
}

use qmoi_testkit::check;

fn status(r: &Value, name: &str) -> String {
    check(r, name)["status"].as_str().unwrap_or_default().to_string()
}

fn message(r: &Value, name: &str) -> String {
    check(r, name)["message"].as_str().unwrap_or_default().to_string()
}

/// Files of a small source tree.
fn files() -> Vec<(String, Vec<u8>)> {
    (0..12)
        .map(|i| {
            (format!("data/table{i:02}.csv"), format!("id,value\n{i},{}\n", "x".repeat(500 + i * 97)).into_bytes())
        })
        .collect()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// A tar stream of `entries` plus, when asked, a MANIFEST.sha256 listing `listed`.
fn tar_bytes(entries: &[(String, Vec<u8>)], manifest_of: Option<&[(String, Vec<u8>)]>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap_or_else(|e| panic!("{e}"));
    };
    for (n, d) in entries {
        add(n, d);
    }
    if let Some(listed) = manifest_of {
        let m: String = listed.iter().map(|(n, d)| format!("{}  {n}\n", sha256_hex(d))).collect();
        add("MANIFEST.sha256", m.as_bytes());
    }
    b.into_inner().unwrap_or_else(|e| panic!("{e}"))
}

fn write_archive(path: &Path, entries: &[(String, Vec<u8>)], manifest_of: Option<&[(String, Vec<u8>)]>) {
    let name = path.to_string_lossy().into_owned();
    let data = if name.ends_with(".tar.gz") {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&tar_bytes(entries, manifest_of)).unwrap_or_else(|e| panic!("{e}"));
        e.finish().unwrap_or_else(|e| panic!("{e}"))
    } else if name.ends_with(".tar.zst") {
        zstd::encode_all(&tar_bytes(entries, manifest_of)[..], 3).unwrap_or_else(|e| panic!("{e}"))
    } else if name.ends_with(".zip") {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (n, d) in entries {
            z.start_file(n.as_str(), opts).unwrap_or_else(|e| panic!("{e}"));
            z.write_all(d).unwrap_or_else(|e| panic!("{e}"));
        }
        z.finish().unwrap_or_else(|e| panic!("{e}")).into_inner()
    } else {
        tar_bytes(entries, manifest_of)
    };
    std::fs::write(path, data).unwrap_or_else(|e| panic!("{e}"));
}

fn set_age(path: &Path, age: Duration) {
    let t = SystemTime::now() - age;
    std::fs::File::options().write(true).open(path).and_then(|f| f.set_modified(t)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn stale_missing_and_missed_schedule_are_reported() {
    let site = Site::new(
        r#"
[[targets]]
name = "fresh"
path = "backups"
pattern = "fresh-*.tar"
max_age = "26h"
verify = ["metadata"]

[[targets]]
name = "old"
path = "backups"
pattern = "old-*.tar"
max_age = "1h"
critical_age = "48h"
schedule = "every 1h"
grace = "5m"
verify = ["metadata"]

[[targets]]
name = "ancient"
path = "backups"
pattern = "ancient-*.tar"
max_age = "1h"
verify = ["metadata"]

[[targets]]
name = "none"
path = "backups"
pattern = "nothing-*.tar"
max_age = "1h"
"#,
    );
    write_archive(&site.path("backups/fresh-1.tar"), &files(), None);
    write_archive(&site.path("backups/old-1.tar"), &files(), None);
    set_age(&site.path("backups/old-1.tar"), Duration::from_secs(3 * 3600));
    write_archive(&site.path("backups/ancient-1.tar"), &files(), None);
    set_age(&site.path("backups/ancient-1.tar"), Duration::from_secs(5 * 3600));
    let r = site.once();
    assert_eq!(status(&r, "backup:fresh"), "ok");
    assert_eq!(status(&r, "backup:old"), "warning", "{}", message(&r, "backup:old"));
    assert!(message(&r, "backup:old").contains("older than 1h"), "{}", message(&r, "backup:old"));
    assert_eq!(status(&r, "schedule:old"), "warning");
    assert!(message(&r, "schedule:old").contains("produced no backup"), "{}", message(&r, "schedule:old"));
    assert_eq!(status(&r, "backup:ancient"), "critical", "past 2 × max_age: {}", message(&r, "backup:ancient"));
    assert_eq!(status(&r, "backup:none"), "critical");
    assert!(message(&r, "backup:none").contains("no backup found in backups/nothing-*.tar"));
    let alerts = r["alerts"].to_string();
    assert!(alerts.contains("backup/backup:none") && alerts.contains("Backup missing: none"), "{alerts}");
}

#[test]
fn a_backup_much_smaller_than_the_previous_one_is_a_shrink() {
    let site = Site::new(
        "[[targets]]\nname = \"db\"\npath = \"backups\"\npattern = \"db-*.tar\"\nmax_age = \"1d\"\nmax_shrink_percent = 50\nmin_size = 1000\nverify = [\"metadata\"]\n",
    );
    write_archive(&site.path("backups/db-1.tar"), &files(), None);
    set_age(&site.path("backups/db-1.tar"), Duration::from_secs(3600));
    let r = site.once();
    assert_eq!(status(&r, "size:db"), "ok");
    write_archive(&site.path("backups/db-2.tar"), &files()[..1], None);
    let r = site.once();
    assert_eq!(status(&r, "size:db"), "warning");
    let m = message(&r, "size:db");
    assert!(m.contains("smaller than the previous backup db-1.tar"), "{m}");
    let trend = r["details"]["targets"][0]["trend"].as_array().map_or(0, Vec::len);
    assert_eq!(trend, 2, "size trend kept across runs");
}

/// Retention by count (a path that had no test): too few backups (retention too short,
/// or backups deleted) and too many (pruning not running) are warnings naming the count.
#[test]
fn retention_count_too_few_and_too_many_are_warnings() {
    let site = Site::new(
        "[[targets]]\nname = \"few\"\npath = \"few\"\nmax_age = \"1d\"\nmin_count = 3\nverify = [\"metadata\"]\n\n\
         [[targets]]\nname = \"many\"\npath = \"many\"\nmax_age = \"1d\"\nmax_count = 2\nverify = [\"metadata\"]\n",
    );
    for (dir, n) in [("few", 2), ("many", 3)] {
        std::fs::create_dir_all(site.path(dir)).unwrap();
        for i in 0..n {
            write_archive(&site.path(&format!("{dir}/b-{i}.tar")), &files(), None);
        }
    }
    let r = site.once();
    assert_eq!(status(&r, "count:few"), "warning", "{}", message(&r, "count:few"));
    assert_eq!(message(&r, "count:few"), "few: 2 backups, fewer than min_count 3");
    assert_eq!(status(&r, "count:many"), "warning", "{}", message(&r, "count:many"));
    assert!(
        message(&r, "count:many").starts_with("many: 3 backups, more than max_count 2"),
        "{}",
        message(&r, "count:many")
    );
    write_archive(&site.path("few/b-2.tar"), &files(), None);
    std::fs::remove_file(site.path("many/b-0.tar")).unwrap();
    let r = site.once();
    assert_eq!(status(&r, "count:few"), "ok", "{}", message(&r, "count:few"));
    assert_eq!(status(&r, "count:many"), "ok", "{}", message(&r, "count:many"));
}

#[test]
fn flipping_one_byte_breaks_the_checksum() {
    let site = Site::new(
        "[[targets]]\nname = \"db\"\npath = \"backups\"\npattern = \"*.tar.gz\"\nmax_age = \"1d\"\nverify = [\"checksum\"]\n\n[[targets]]\nname = \"logs\"\npath = \"backups/logs\"\nmax_age = \"1d\"\nverify = [\"checksum\"]\n",
    );
    let file = site.path("backups/db-1.tar.gz");
    write_archive(&file, &files(), None);
    let data = std::fs::read(&file).unwrap_or_default();
    std::fs::write(site.path("backups/db-1.tar.gz.sha256"), format!("{}  db-1.tar.gz\n", sha256_hex(&data))).unwrap();
    std::fs::create_dir_all(site.path("backups/logs")).unwrap();
    std::fs::write(site.path("backups/logs/app.log.gz"), b"not checked by anything").unwrap();
    let r = site.once();
    assert_eq!(status(&r, "checksum:db"), "ok", "{}", message(&r, "checksum:db"));
    assert!(message(&r, "checksum:db").contains("sha256 of db-1.tar.gz matches db-1.tar.gz.sha256"));
    assert_eq!(status(&r, "checksum:logs"), "unknown", "no checksum file is not a pass");
    let mut damaged = data.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x01;
    std::fs::write(&file, &damaged).unwrap();
    let r = site.once();
    assert_eq!(status(&r, "checksum:db"), "critical", "{}", message(&r, "checksum:db"));
    assert!(message(&r, "checksum:db").contains("changed or is damaged"));
}

#[test]
fn truncated_archives_of_every_format_are_corrupt_and_intact_ones_pass() {
    let formats = ["tar", "tar.gz", "tar.zst", "zip"];
    let targets: String = formats
        .iter()
        .map(|f| {
            let n = f.replace('.', "_");
            format!("[[targets]]\nname = \"{n}\"\npath = \"backups/{n}\"\nmax_age = \"1d\"\nverify = [\"archive\"]\n\n")
        })
        .collect();
    let site = Site::new(&targets);
    let mut big = files();
    big.push(("data/blob.bin".into(), (0..400_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()));
    for f in formats {
        let n = f.replace('.', "_");
        std::fs::create_dir_all(site.path(&format!("backups/{n}"))).unwrap();
        write_archive(&site.path(&format!("backups/{n}/b-1.{f}")), &big, None);
        set_age(&site.path(&format!("backups/{n}/b-1.{f}")), Duration::from_secs(60));
    }
    let r = site.once();
    for f in formats {
        let n = f.replace('.', "_");
        assert_eq!(status(&r, &format!("archive:{n}")), "ok", "{f}: {}", message(&r, &format!("archive:{n}")));
        assert!(
            message(&r, &format!("archive:{n}")).contains("13 entries read"),
            "{}",
            message(&r, &format!("archive:{n}"))
        );
    }
    // A newer backup of each, cut at 60%.
    for f in formats {
        let n = f.replace('.', "_");
        let p = site.path(&format!("backups/{n}/b-2.{f}"));
        write_archive(&p, &big, None);
        let data = std::fs::read(&p).unwrap_or_default();
        std::fs::write(&p, &data[..data.len() * 6 / 10]).unwrap();
    }
    let r = site.once();
    for f in formats {
        let n = f.replace('.', "_");
        let name = format!("archive:{n}");
        assert_eq!(status(&r, &name), "critical", "{f}: {}", message(&r, &name));
        assert!(message(&r, &name).contains("b-2") && message(&r, &name).contains("corrupt"), "{}", message(&r, &name));
    }
    assert!(r["alerts"].to_string().contains("Backup archive corrupt: tar_gz"));
}

#[test]
fn restore_tests_compare_with_the_manifest_and_the_source_and_clean_up() {
    let site = Site::new(
        r#"
[[targets]]
name = "good"
path = "backups/good"
max_age = "1d"
verify = ["archive", "restore"]
manifest = "MANIFEST.sha256"
restore_command = "tar -xzf {file} -C /srv/restore"

[[targets]]
name = "incomplete"
path = "backups/incomplete"
max_age = "1d"
verify = ["restore"]
manifest = "MANIFEST.sha256"

[[targets]]
name = "source"
path = "backups/source"
max_age = "1d"
verify = ["restore"]
compare_with = "src"
archive_root = "data"
"#,
    );
    for d in ["good", "incomplete", "source"] {
        std::fs::create_dir_all(site.path(&format!("backups/{d}"))).unwrap();
    }
    let all = files();
    write_archive(&site.path("backups/good/full.tar.gz"), &all, Some(&all));
    // One file listed in the manifest never made it into the archive.
    write_archive(&site.path("backups/incomplete/part.tar.zst"), &all[1..], Some(&all));
    // The source folder as it was when backed up (files older than the backup).
    for (n, d) in &all {
        let p = site.path(&format!("src/{}", n.trim_start_matches("data/")));
        std::fs::create_dir_all(p.parent().unwrap_or(Path::new("."))).unwrap();
        std::fs::write(&p, d).unwrap();
        set_age(&p, Duration::from_secs(7200));
    }
    write_archive(&site.path("backups/source/s.zip"), &all, None);
    let r = site.once();
    assert_eq!(status(&r, "restore:good"), "ok", "{}", message(&r, "restore:good"));
    assert!(message(&r, "restore:good").contains("12 compared, all match"), "{}", message(&r, "restore:good"));
    assert_eq!(status(&r, "restore:incomplete"), "critical");
    assert!(
        message(&r, "restore:incomplete").contains("data/table00.csv: in the manifest, missing from the archive"),
        "{}",
        message(&r, "restore:incomplete")
    );
    assert_eq!(status(&r, "restore:source"), "ok", "{}", message(&r, "restore:source"));
    // The recovery procedure is in the report, with the newest file filled in.
    let cmd = r["details"]["targets"][0]["restore_command"].as_str().unwrap_or_default();
    assert!(cmd.starts_with("tar -xzf backups/good/full.tar.gz"), "{cmd}");
    // Nothing left behind in the restore folder, and the backups are untouched.
    let left = std::fs::read_dir(site.path("data/restore")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "restore folders are removed");
    // A file changed in the source after the backup is not a failure.
    std::fs::write(site.path("src/table03.csv"), "changed later").unwrap();
    let out = site.run(&["--verify", "source"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("1 source files changed since the backup"), "{text}");
}

#[test]
fn verify_and_list_print_what_they_see() {
    let site = Site::new("[[targets]]\nname = \"db\"\npath = \"backups\"\nmax_age = \"1d\"\nverify = [\"archive\"]\n");
    write_archive(&site.path("backups/db-1.tar.gz"), &files(), None);
    let out = site.run(&["--list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("db-1.tar.gz") && text.contains("1 backup(s)"), "{text}");
    let out = site.run(&["--verify", "db"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("archive:db") && text.contains("entries read and decompressed"), "{text}");
    let out = site.run(&["--verify", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target 'nope' (configured: db)"));
}

#[test]
fn bad_targets_are_configuration_errors() {
    let site = Site::new(
        "[[targets]]\nname = \"a\"\nmax_age = \"1d\"\n\n[[targets]]\nname = \"r\"\nkind = \"restic\"\nmax_age = \"1d\"\nverify = [\"restore\"]\nschedule = \"monthly\"\n",
    );
    let out = site.run(&["--validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in ["targets[0].path", "targets[1].repository", "targets[1].verify", "targets[1].schedule", "backup.toml"]
    {
        assert!(err.contains(want), "{want} in {err}");
    }
}

fn restic() -> bool {
    qmoi_testkit::require_tool(&["restic"], "apt-get install restic")
}

#[test]
fn a_real_restic_repository_is_checked_and_a_deleted_pack_fails_the_check() {
    if !restic() {
        return;
    }
    let site = Site::new(
        "[[targets]]\nname = \"repo\"\nkind = \"restic\"\nrepository = \"repo\"\nmax_age = \"1h\"\nverify = [\"archive\"]\nmin_count = 1\nenv = { RESTIC_PASSWORD = \"test-password\", RESTIC_CACHE_DIR = \"cache\" }\n",
    );
    for (n, d) in files() {
        let p = site.path(&format!("src/{n}"));
        std::fs::create_dir_all(p.parent().unwrap_or(Path::new("."))).unwrap();
        std::fs::write(&p, d).unwrap();
    }
    let restic = |args: &[&str]| {
        let out = Command::new("restic")
            .current_dir(site.dir.path())
            .args(["--repo", "repo"])
            .args(args)
            .env("RESTIC_PASSWORD", "test-password")
            .env("RESTIC_CACHE_DIR", "cache")
            .output()
            .unwrap();
        assert!(out.status.success(), "restic {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    restic(&["init"]);
    restic(&["backup", "src"]);
    let r = site.once();
    assert_eq!(status(&r, "backup:repo"), "ok", "{}", message(&r, "backup:repo"));
    assert_eq!(status(&r, "archive:repo"), "ok", "{}", message(&r, "archive:repo"));
    assert!(message(&r, "archive:repo").contains("repository check passed"));
    // Damage the repository: delete a pack holding only file data (a missing tree pack
    // makes restic retry with backoff for minutes before failing). The index says which.
    let restic_out = |args: &[&str]| {
        let out = Command::new("restic")
            .current_dir(site.dir.path())
            .args(["--repo", "repo", "--no-lock"])
            .args(args)
            .env("RESTIC_PASSWORD", "test-password")
            .env("RESTIC_CACHE_DIR", "cache")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut data_pack = None;
    for index in restic_out(&["list", "index"]).lines() {
        let v: Value = serde_json::from_str(&restic_out(&["cat", "index", index.trim()])).unwrap_or_default();
        for pack in v["packs"].as_array().into_iter().flatten() {
            let all_data = pack["blobs"].as_array().is_some_and(|b| b.iter().all(|b| b["type"] == "data"));
            if all_data && data_pack.is_none() {
                data_pack = pack["id"].as_str().map(str::to_string);
            }
        }
    }
    let id = data_pack.unwrap_or_else(|| panic!("no data pack in the index"));
    let pack = site.path(&format!("repo/data/{}/{id}", &id[..2]));
    std::fs::remove_file(&pack).unwrap_or_else(|e| panic!("{}: {e}", pack.display()));
    let out = site.run(&["--verify", "repo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("archive:repo") && text.contains("restic check failed"), "{text}");
}

fn borg() -> bool {
    qmoi_testkit::require_tool(&["borg"], "apt-get install borgbackup")
}

#[test]
fn a_real_borg_repository_is_listed_and_checked_and_a_damaged_segment_fails() {
    if !borg() {
        return;
    }
    let site = Site::new(
        "[[targets]]\nname = \"borg\"\nkind = \"borg\"\nrepository = \"repo\"\nmax_age = \"1h\"\nverify = [\"archive\"]\nmin_count = 1\n\
         env = { BORG_BASE_DIR = \"borg-home\", BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK = \"yes\" }\n",
    );
    for (n, d) in files() {
        let p = site.path(&format!("src/{n}"));
        std::fs::create_dir_all(p.parent().unwrap_or(Path::new("."))).unwrap();
        std::fs::write(&p, d).unwrap();
    }
    let borg = |args: &[&str]| {
        let out = Command::new("borg")
            .current_dir(site.dir.path())
            .args(args)
            .env("BORG_BASE_DIR", "borg-home")
            .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
            .output()
            .unwrap();
        assert!(out.status.success(), "borg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    borg(&["init", "--encryption=none", "repo"]);
    borg(&["create", "repo::nightly-1", "src"]);
    let r = site.once();
    assert_eq!(status(&r, "backup:borg"), "ok", "{}", message(&r, "backup:borg"));
    assert!(message(&r, "backup:borg").contains("newest backup nightly-1"), "{}", message(&r, "backup:borg"));
    assert_eq!(status(&r, "archive:borg"), "ok", "{}", message(&r, "archive:borg"));
    // Damage the repository: flip one byte in the middle of the biggest segment file that
    // is not the last one (the last holds the commit; the archive list stays readable).
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(site.path("repo/data/0"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u64>().ok()?, e.path())))
        .collect();
    segments.sort();
    segments.pop();
    let victim = segments
        .iter()
        .max_by_key(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| panic!("no segment files"));
    let mut data = std::fs::read(&victim).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&victim, data).unwrap();
    let out = site.run(&["--verify", "borg"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("borg check failed"), "{text}");
}

#[test]
fn the_daemon_reports_while_a_slow_verification_runs_and_again_when_it_ends() {
    // A stand-in for restic whose `check` takes 4 s (its listing is instant): what a
    // large repository looks like to the monitor, without minutes of real work.
    let site = Site::new(
        "timeout = \"2s\"\ninterval = \"1h\"\n[[targets]]\nname = \"slow\"\nkind = \"restic\"\nrepository = \"repo\"\ncommand = \"./slow-restic\"\nmax_age = \"1h\"\nverify = [\"archive\"]\n",
    );
    let now = chrono::Utc::now().to_rfc3339();
    let script = format!(
        "#!/bin/sh\ncase \"$3\" in\n  snapshots) echo '[{{\"time\":\"{now}\",\"short_id\":\"abc123\"}}]' ;;\n  check) sleep 4; echo 'no errors were found' ;;\nesac\n"
    );
    std::fs::write(site.path("slow-restic"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(site.path("slow-restic"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut daemon =
        site.cmd().stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    let first = qmoi_testkit::wait_for(Duration::from_secs(10), "a report while the check runs", || {
        read_json(&site.path("logs/backup_latest.json"))
    });
    let waited = started.elapsed();
    assert_eq!(status(&first, "archive:slow"), "unknown", "{}", message(&first, "archive:slow"));
    assert!(message(&first, "archive:slow").contains("first archive verification of abc123 running since"));
    assert_eq!(status(&first, "backup:slow"), "ok");
    let done =
        qmoi_testkit::wait_for(Duration::from_secs(15), "the report after the check (the interval is 1 h)", || {
            read_json(&site.path("logs/backup_latest.json")).filter(|r| {
                r["checks"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["name"] == "archive:slow" && c["status"] == "ok"))
            })
        });
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(waited < Duration::from_secs(4), "the first report did not wait for the 4 s check ({waited:?})");
    assert!(message(&done, "archive:slow").contains("repository check passed: no errors were found"));
}
