//! Disk space and inodes per mount.
//!
//! Mounts come from `/proc/self/mounts`; pseudo file systems are skipped, and bind mounts of
//! one file system are reported once (the shortest mount point wins). Each `statvfs` runs
//! on a blocking thread bounded by the check timeout: a hung NFS server makes that mount
//! `unknown`, never the whole monitor. A blocked `statvfs` cannot be cancelled, so at most
//! one is outstanding per mount: while it has not returned, later runs report the mount
//! as still hung instead of blocking one more thread each (a run every minute leaked a
//! thread a minute).

use super::{Collected, fmt_bytes, percent};
use crate::SystemHealthConfig;
use qmoi_core::CheckResult;
use qmoi_core::threshold::{Threshold, fmt_percent};
use std::collections::HashSet;
use std::time::Duration;

/// File system types that hold no user data.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "pstore",
    "bpf",
    "debugfs",
    "tracefs",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "rpc_pipefs",
    "nsfs",
    "squashfs",
    "efivarfs",
    "selinuxfs",
    "fuse.lxcfs",
    "nfsd",
    "ramfs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
];

/// Mount point prefixes that hold kernel interfaces, not data.
const PSEUDO_PREFIXES: &[&str] = &["/proc", "/sys", "/dev/pts", "/run/user/", "/snap/"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
}

/// Parse `/proc/mounts` text. Mount points escape space, tab, newline and backslash as octal.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let device = unescape(f.next()?);
            let mount_point = unescape(f.next()?);
            let fs_type = f.next()?.to_string();
            Some(Mount { device, mount_point, fs_type })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // `\ooo`, octal, as the kernel writes space, tab, newline and backslash; one
        // beyond a byte (`\454`, found by fuzzing: it overflowed) stays as it is.
        let octal = (i + 3 < b.len() && b[i] == b'\\' && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)))
            .then(|| b[i + 1..i + 4].iter().fold(0u16, |v, c| v * 8 + u16::from(c - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        if let Some(v) = octal {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which mounts to check, per config and the pseudo-fs rules.
pub fn select<'a>(cfg: &crate::config::DiskConfig, mounts: &'a [Mount]) -> Vec<&'a Mount> {
    mounts
        .iter()
        .filter(|m| {
            if !cfg.mounts.is_empty() {
                return cfg.mounts.contains(&m.mount_point);
            }
            !PSEUDO_FS.contains(&m.fs_type.as_str())
                && !cfg.ignore_fs_types.contains(&m.fs_type)
                && !cfg.ignore_mounts.contains(&m.mount_point)
                && !PSEUDO_PREFIXES.iter().any(|p| {
                    m.mount_point == p.trim_end_matches('/')
                        || m.mount_point.starts_with(&format!("{}/", p.trim_end_matches('/')))
                })
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    dev: u64,
    total: f64,
    used: f64,
    avail: f64,
    inodes: f64,
    inodes_free: f64,
}

fn stat_mount(path: &str) -> Result<Usage, String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).map_err(|e| e.to_string())?.dev();
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| e.to_string())?;
    let frag = s.fragment_size() as f64;
    let total = s.blocks() as f64 * frag;
    let free = s.blocks_free() as f64 * frag;
    let avail = s.blocks_available() as f64 * frag;
    Ok(Usage { dev, total, used: total - free, avail, inodes: s.files() as f64, inodes_free: s.files_free() as f64 })
}

/// Mount points whose `statvfs` has not returned yet, and since when.
fn outstanding() -> &'static std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>> {
    static HUNG: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>> =
        std::sync::OnceLock::new();
    HUNG.get_or_init(Default::default)
}

/// `stat` of one mount on a blocking thread, bounded by `timeout`; none started while the
/// previous one for this mount is still blocked.
async fn stat_bounded<F>(path: String, timeout: Duration, stat: F) -> Result<Usage, String>
where
    F: FnOnce(&str) -> Result<Usage, String> + Send + 'static,
{
    {
        let mut hung = outstanding().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(since) = hung.get(&path) {
            return Err(format!(
                "still hung: the check started {} ago has not returned (no other is started until it does)",
                qmoi_core::config::ConfigDuration(Duration::from_secs(since.elapsed().as_secs()))
            ));
        }
        hung.insert(path.clone(), std::time::Instant::now());
    }
    let blocking = tokio::task::spawn_blocking(move || {
        let r = stat(&path);
        outstanding().lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&path);
        r
    });
    match tokio::time::timeout(timeout, blocking).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(format!("stat task failed: {e}")),
        Err(_) => Err(format!("no answer within {timeout:?} (hung network file system?)")),
    }
}

pub async fn check(cfg: &SystemHealthConfig, timeout: Duration, out: &mut Collected) {
    let text = match tokio::fs::read_to_string("/proc/self/mounts").await {
        Ok(t) => t,
        Err(e) => {
            out.checks.push(CheckResult::unknown("disk_usage", format!("cannot read /proc/self/mounts: {e}")));
            return;
        }
    };
    let all = parse_mounts(&text);
    let selected = select(&cfg.disk, &all);
    let mut set = tokio::task::JoinSet::new();
    for (i, m) in selected.iter().enumerate() {
        let path = m.mount_point.clone();
        set.spawn(async move { (i, stat_bounded(path, timeout, stat_mount).await) });
    }
    let mut results: Vec<(usize, Result<Usage, String>)> = set.join_all().await;
    results.sort_by_key(|(i, _)| *i);

    let space = Threshold::above(cfg.disk.warning, cfg.disk.critical);
    let inode_t = Threshold::above(cfg.disk.inode_warning, cfg.disk.inode_critical);
    let mut seen_dev = HashSet::new();
    let mut table = Vec::new();
    // Shortest mount point first, so a bind mount's original is the one kept.
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by_key(|&i| (selected[i].mount_point.len(), i));
    for i in order {
        let m = selected[i];
        let mp = m.mount_point.as_str();
        match &results[i].1 {
            Err(e) => {
                out.checks.push(CheckResult::unknown(
                    format!("disk_usage:{mp}"),
                    format!("cannot read disk usage of {mp}: {e}"),
                ));
            }
            Ok(u) if u.total <= 0.0 => {}
            Ok(u) => {
                if !seen_dev.insert(u.dev) {
                    continue;
                }
                // As df computes Use%: used / (used + available to non-root users).
                let pct = percent(u.used, u.used + u.avail);
                let c = space.check(format!("disk_usage:{mp}"), &format!("disk {mp}"), pct, "percent", fmt_percent);
                let message = format!("{} ({} free of {})", c.message, fmt_bytes(u.avail), fmt_bytes(u.total));
                out.checks
                    .push(CheckResult { message, ..c }.with_title(format!("Disk {mp} {} full", fmt_percent(pct))));
                out.metric("qmoi_disk_used_ratio", &[("mount", mp)], pct / 100.0);
                out.metric("qmoi_disk_size_bytes", &[("mount", mp)], u.total);
                out.metric("qmoi_disk_avail_bytes", &[("mount", mp)], u.avail);
                let mut inode_pct = None;
                if u.inodes > 0.0 {
                    let ip = percent(u.inodes - u.inodes_free, u.inodes);
                    inode_pct = Some(ip);
                    out.checks.push(
                        inode_t
                            .check(format!("inode_usage:{mp}"), &format!("inodes on {mp}"), ip, "percent", fmt_percent)
                            .with_title(format!("Inodes on {mp} {} used", fmt_percent(ip))),
                    );
                    out.metric("qmoi_disk_inodes_used_ratio", &[("mount", mp)], ip / 100.0);
                }
                table.push(serde_json::json!({
                    "mount": mp, "device": m.device, "fs_type": m.fs_type,
                    "size_bytes": u.total, "used_bytes": u.used, "avail_bytes": u.avail,
                    "used_percent": qmoi_core::threshold::round2(pct),
                    "inodes_used_percent": inode_pct.map(qmoi_core::threshold::round2),
                }));
            }
        }
    }
    out.detail("disks", serde_json::Value::Array(table));
}

#[cfg(test)]
mod tests {
    #[test]
    fn octal_escapes_beyond_a_byte_stay_as_they_are() {
        let m = super::parse_mounts("/dev/a /mnt/a\\040b\\454c ext4 rw 0 0\n");
        assert_eq!(m[0].mount_point, "/mnt/a b\\454c");
    }

    use super::*;

    /// Regression: each run against a hung mount blocked one more thread in `statvfs`
    /// (a thread a minute). One stays blocked; later runs say it is still hung.
    #[tokio::test]
    async fn a_hung_mount_blocks_one_thread_at_most() {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stat = |calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
                    wait: Option<std::sync::mpsc::Receiver<()>>| {
            move |_: &str| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let Some(w) = wait {
                    let _ = w.recv();
                }
                Ok(Usage { dev: 1, total: 10.0, used: 1.0, avail: 9.0, inodes: 1.0, inodes_free: 1.0 })
            }
        };
        let path = "/qmoi-test/hung".to_string();
        let t = Duration::from_millis(50);
        let first = stat_bounded(path.clone(), t, stat(calls.clone(), Some(wait))).await;
        assert!(first.is_err_and(|e| e.contains("no answer within")));
        for _ in 0..3 {
            let again = stat_bounded(path.clone(), t, stat(calls.clone(), None)).await;
            assert!(again.is_err_and(|e| e.starts_with("still hung")));
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "one blocked call, no more");
        let _ = release.send(());
        for _ in 0..100 {
            if !outstanding().lock().map(|m| m.contains_key(&path)).unwrap_or(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let back = stat_bounded(path, t, stat(calls.clone(), None)).await;
        assert!(back.is_ok(), "{:?}", back.err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    const SAMPLE: &str = "\
/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw 0 0
/dev/vdb /mnt/my\\040data xfs rw 0 0
/dev/loop1 /snap/core/1 squashfs ro 0 0
";

    #[test]
    fn parses_and_skips_pseudo_file_systems() {
        let m = parse_mounts(SAMPLE);
        assert_eq!(m[4].mount_point, "/mnt/my data");
        let cfg = crate::config::DiskConfig::default();
        let sel: Vec<&str> = select(&cfg, &m).iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(sel, vec!["/", "/dev/shm", "/mnt/my data"]);
    }

    #[test]
    fn explicit_mounts_and_ignores() {
        let m = parse_mounts(SAMPLE);
        let cfg = crate::config::DiskConfig { mounts: vec!["/".into()], ..Default::default() };
        assert_eq!(select(&cfg, &m).len(), 1);
        let cfg = crate::config::DiskConfig {
            ignore_fs_types: vec!["tmpfs".into()],
            ignore_mounts: vec!["/mnt/my data".into()],
            ..Default::default()
        };
        let sel: Vec<&str> = select(&cfg, &m).iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(sel, vec!["/"]);
    }

    #[tokio::test]
    async fn root_is_checked_with_space_and_inodes() {
        let cfg = SystemHealthConfig {
            disk: crate::config::DiskConfig { mounts: vec!["/".into()], ..Default::default() },
            ..Default::default()
        };
        let mut out = Collected::default();
        check(&cfg, Duration::from_secs(5), &mut out).await;
        let c = out.checks.iter().find(|c| c.name == "disk_usage:/");
        assert!(c.is_some_and(|c| c.value.is_some_and(|v| (0.0..=100.0).contains(&v))), "{:?}", out.checks);
        assert!(out.metrics.contains_key("qmoi_disk_used_ratio{mount=\"/\"}"));
    }
}
