//! Host threats beside files: accounts and sudoers, processes running from deleted or
//! world-writable locations, kernel modules; and the sealed host baseline
//! (`<data_dir>/security_host.json`) that listeners, accounts and modules are compared with.

use crate::config::{AccountsConfig, ModulesConfig, ProcessesConfig};
use crate::seal::{self, Key};
use qmoi_core::runner::Collected;
use qmoi_core::{CheckResult, Status};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const HOST_FILE: &str = "security_host.json";

/// What was accepted as normal. A section that is `None` has not been learned yet: the
/// first run learns it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct HostBaseline {
    pub listeners: Option<BTreeSet<String>>,
    /// user → `uid:gid:home:shell` (and a keyed hash of the shadow line when readable).
    pub accounts: Option<BTreeMap<String, String>>,
    /// group → `gid:members`.
    pub groups: Option<BTreeMap<String, String>>,
    /// sudoers file → keyed hash of its content (or `unreadable`).
    pub sudoers: Option<BTreeMap<String, String>>,
    pub modules: Option<BTreeSet<String>>,
}

impl HostBaseline {
    pub fn load(path: &Path, key: &Key) -> Result<Self, String> {
        match seal::read(path, key) {
            Ok(Some(body)) => {
                serde_json::from_slice(&body).map_err(|e| format!("{}: not a host baseline: {e}", path.display()))
            }
            Ok(None) => Ok(Self::default()),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn save(&self, path: &Path, key: &Key) -> Result<(), String> {
        let body = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        seal::write(path, key, &body)
    }
}

/// The accounts as seen now.
#[derive(Debug, Default)]
pub struct Accounts {
    pub users: BTreeMap<String, String>,
    pub groups: BTreeMap<String, String>,
    pub sudoers: BTreeMap<String, String>,
    pub shadow_readable: bool,
}

/// Read passwd, group, shadow (when readable) and sudoers. Shadow lines and sudoers
/// files are kept only as keyed hashes: the baseline must not become a copy of them.
pub fn read_accounts(cfg: &AccountsConfig, key: &[u8; 32]) -> Result<Accounts, String> {
    let passwd = fs_err::read_to_string(cfg.passwd.as_str()).map_err(|e| e.to_string())?;
    let mut acc = Accounts::default();
    for line in passwd.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 7 {
            acc.users.insert(f[0].to_string(), format!("uid={} gid={} home={} shell={}", f[2], f[3], f[5], f[6]));
        }
    }
    if let Ok(shadow) = std::fs::read_to_string(cfg.shadow.as_str()) {
        acc.shadow_readable = true;
        for line in shadow.lines() {
            if let Some((name, _)) = line.split_once(':')
                && let Some(u) = acc.users.get_mut(name)
            {
                let h = blake3::keyed_hash(key, line.as_bytes());
                u.push_str(&format!(" shadow={}", &h.to_hex()[..16]));
            }
        }
    }
    if let Ok(group) = std::fs::read_to_string(cfg.group.as_str()) {
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 {
                acc.groups.insert(f[0].to_string(), format!("gid={} members={}", f[2], f[3]));
            }
        }
    }
    for s in &cfg.sudoers {
        let p = PathBuf::from(s.as_str());
        let files: Vec<PathBuf> = match std::fs::read_dir(&p) {
            Ok(rd) => {
                let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                v.sort();
                v
            }
            Err(_) if p.is_dir() => {
                acc.sudoers.insert(p.display().to_string(), "unreadable".into());
                continue;
            }
            Err(_) => vec![p],
        };
        for f in files {
            match std::fs::read(&f) {
                Ok(data) => {
                    acc.sudoers
                        .insert(f.display().to_string(), blake3::keyed_hash(key, &data).to_hex()[..16].to_string());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => {
                    acc.sudoers.insert(f.display().to_string(), "unreadable".into());
                }
            }
        }
    }
    Ok(acc)
}

/// Compare one map with its baseline: a check per added, removed or changed entry.
fn compare_map(
    kind: &str,
    what: &str,
    base: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    out: &mut Collected,
) -> usize {
    let mut n = 0;
    for (name, v) in now {
        let (change, detail) = match base.get(name) {
            None => ("added", format!("{what} '{name}' added: {}", redact(v))),
            Some(old) if old != v => ("changed", format!("{what} '{name}' changed: {} → {}", redact(old), redact(v))),
            _ => continue,
        };
        n += 1;
        out.check(
            CheckResult::new(format!("{kind}:{name}"), Status::Critical, detail)
                .with_title(format!("{} {change}: {name}", capital(what))),
        );
    }
    for name in base.keys().filter(|k| !now.contains_key(*k)) {
        n += 1;
        out.check(
            CheckResult::new(format!("{kind}:{name}"), Status::Critical, format!("{what} '{name}' removed"))
                .with_title(format!("{} removed: {name}", capital(what))),
        );
    }
    n
}

/// Shadow hashes are keyed hashes, but there is no need to show them.
fn redact(v: &str) -> String {
    match v.find(" shadow=") {
        Some(i) => format!("{} (shadow entry)", &v[..i]),
        None => v.to_string(),
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().collect::<String>() + c.as_str())
}

/// Accounts, groups and sudoers against the baseline (learning sections not yet known).
pub fn check_accounts(
    cfg: &AccountsConfig,
    key: &[u8; 32],
    base: &mut HostBaseline,
    learned: &mut bool,
    out: &mut Collected,
) {
    let acc = match read_accounts(cfg, key) {
        Ok(a) => a,
        Err(e) => {
            out.check(qmoi_core::runner::unreadable("accounts", "the account database", e));
            return;
        }
    };
    for (slot, now) in
        [(&mut base.accounts, &acc.users), (&mut base.groups, &acc.groups), (&mut base.sudoers, &acc.sudoers)]
    {
        if slot.is_none() {
            *slot = Some(now.clone());
            *learned = true;
        }
    }
    let mut changes = 0;
    if let Some(b) = &base.accounts {
        changes += compare_map("account", "account", b, &acc.users, out);
    }
    if let Some(b) = &base.groups {
        changes += compare_map("group", "group", b, &acc.groups, out);
    }
    if let Some(b) = &base.sudoers {
        changes += compare_map("sudoers", "sudoers file", b, &acc.sudoers, out);
    }
    let unreadable = acc.sudoers.values().filter(|v| *v == "unreadable").count();
    out.check(CheckResult::ok(
        "accounts",
        format!(
            "{} accounts, {} groups, {} sudoers files ({} unreadable), shadow {}; {changes} changes since the baseline",
            acc.users.len(),
            acc.groups.len(),
            acc.sudoers.len(),
            unreadable,
            if acc.shadow_readable { "compared" } else { "not readable (run as root to compare it)" }
        ),
    ));
    out.metric("qmoi_security_accounts", &[], acc.users.len() as f64);
    out.metric("qmoi_security_account_changes", &[], changes as f64);
    out.detail(
        "accounts",
        json!({"users": acc.users.len(), "groups": acc.groups.len(), "sudoers_files": acc.sudoers.len(), "shadow_compared": acc.shadow_readable, "changes": changes}),
    );
}

/// QMOI's own programs, told from a stranger's by what they are, never by name: the
/// `qmoi-*` files beside this monitor's executable (by device and inode, or by the same
/// size and BLAKE3 content: a second stack of the same build elsewhere, or a binary
/// replaced by a rebuild while it runs), and the processes the supervisor that started this
/// monitor started (its children), when that supervisor is itself one of them. A fresh
/// clone under `/tmp` must not greet its operator with alerts about QMOI itself.
struct OwnStack {
    ids: BTreeSet<(u64, u64)>,
    /// Size and path of each own binary, for the content comparison.
    files: Vec<(u64, PathBuf)>,
    hashes: std::cell::RefCell<BTreeMap<PathBuf, Option<blake3::Hash>>>,
    /// The supervisor's pid, when our parent is a QMOI binary.
    supervisor: Option<u32>,
}

impl OwnStack {
    fn find() -> Self {
        use std::os::unix::fs::MetadataExt;
        let mut own = Self { ids: BTreeSet::new(), files: Vec::new(), hashes: Default::default(), supervisor: None };
        if let Some(dir) = std::env::current_exe().ok().as_deref().and_then(Path::parent)
            && let Ok(rd) = std::fs::read_dir(dir)
        {
            for e in rd.flatten() {
                let is_qmoi = e.file_name().to_str().is_some_and(|n| n.starts_with("qmoi-"));
                if let (true, Ok(m)) = (is_qmoi, std::fs::metadata(e.path()))
                    && m.is_file()
                {
                    own.ids.insert((m.dev(), m.ino()));
                    own.files.push((m.len(), e.path()));
                }
            }
        }
        if let Ok(m) = std::fs::metadata("/proc/self/exe") {
            own.ids.insert((m.dev(), m.ino()));
        }
        let parent = std::os::unix::process::parent_id();
        if parent > 1 && own.is_own_binary(parent) {
            own.supervisor = Some(parent);
        }
        own
    }

    /// Is the program process `pid` runs one of ours? `/proc/<pid>/exe` opens the running
    /// file even when it was deleted.
    fn is_own_binary(&self, pid: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let Ok(m) = std::fs::metadata(&exe) else { return false };
        if self.ids.contains(&(m.dev(), m.ino())) {
            return true;
        }
        let same_size: Vec<&PathBuf> = self.files.iter().filter(|(len, _)| *len == m.len()).map(|(_, p)| p).collect();
        if same_size.is_empty() {
            return false;
        }
        let Some(theirs) = hash_file(&exe) else { return false };
        let mut cache = self.hashes.borrow_mut();
        same_size.into_iter().any(|p| *cache.entry(p.clone()).or_insert_with(|| hash_file(p)) == Some(theirs))
    }

    fn is_own(&self, pid: u32) -> bool {
        pid == std::process::id()
            || Some(pid) == self.supervisor
            || (self.supervisor.is_some() && self.supervisor == parent_of(pid))
            || self.is_own_binary(pid)
    }
}

fn hash_file(p: &Path) -> Option<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(p).ok()?).ok()?;
    Some(h.finalize())
}

fn parent_of(pid: u32) -> Option<u32> {
    qmoi_core::procfs::stat(pid).map(|s| s.ppid)
}

/// The processes of one executable that share one reason: one finding, whatever their
/// number, with a name (and so an alert fingerprint) that survives their restarts.
struct ProcessGroup {
    comm: String,
    path: String,
    why: String,
    level: qmoi_core::Severity,
    deleted: bool,
    pids: Vec<u32>,
}

/// Processes whose executable was deleted or lives in a world-writable folder, one
/// finding per executable and reason (50 processes of one binary are one alert, listing
/// their pids). QMOI's own processes are never findings ([`OwnStack`]).
pub fn check_processes(cfg: &ProcessesConfig, out: &mut Collected) {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        out.check(CheckResult::unknown("processes", "cannot list /proc"));
        return;
    };
    let own = OwnStack::find();
    let mut total = 0;
    let mut hidden = 0;
    let mut own_count = 0;
    let mut groups: BTreeMap<String, ProcessGroup> = BTreeMap::new();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        total += 1;
        let exe = match std::fs::read_link(e.path().join("exe")) {
            Ok(p) => p.to_string_lossy().into_owned(),
            // Kernel threads have no exe; other users' processes are not ours to see.
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                hidden += 1;
                continue;
            }
            Err(_) => continue,
        };
        let (path, deleted) = match exe.strip_suffix(" (deleted)") {
            Some(p) => (p.to_string(), true),
            None => (exe.clone(), false),
        };
        if cfg.ignore.contains(&path) {
            continue;
        }
        let dir = cfg.suspicious_dirs.iter().find(|d| Path::new(&path).starts_with(d.as_str()));
        let level = match (dir, deleted) {
            (Some(_), _) => cfg.suspicious_dir_level,
            (None, true) => cfg.deleted_level,
            (None, false) => continue,
        };
        if own.is_own(pid) {
            own_count += 1;
            continue;
        }
        let comm = std::fs::read_to_string(e.path().join("comm")).map(|s| s.trim().to_string()).unwrap_or_default();
        let memfd = path.starts_with("/memfd:");
        let why = match (dir, deleted) {
            (Some(d), true) => format!("runs from {d} and its executable was deleted"),
            (Some(d), false) => format!("runs from {d}"),
            // memfd_create + exec: nothing on disk (container runtimes do it; so does
            // fileless malware).
            _ if memfd => "runs from an in-memory file (memfd), not from disk".to_string(),
            _ => "its executable was deleted".to_string(),
        };
        // A memfd's name differs per instance: group those by process name.
        let name = if memfd {
            format!("process:memfd:{}", comm.trim_start_matches("memfd:"))
        } else {
            format!("process:{exe}")
        };
        groups
            .entry(name)
            .or_insert_with(|| ProcessGroup { comm, path, why, level, deleted, pids: Vec::new() })
            .pids
            .push(pid);
    }
    let suspicious: usize = groups.values().map(|g| g.pids.len()).sum();
    for (name, g) in &mut groups {
        g.pids.sort_unstable();
        let listed: Vec<String> = g.pids.iter().take(10).map(u32::to_string).collect();
        let more = if g.pids.len() > 10 { format!(" and {} more", g.pids.len() - 10) } else { String::new() };
        let who = if g.pids.len() == 1 {
            format!("pid {} ({})", g.pids[0], g.comm)
        } else {
            format!("{} processes of {} (pids {}{more})", g.pids.len(), g.comm, listed.join(", "))
        };
        out.check(CheckResult::new(name.clone(), g.level.status(), format!("{who} {}: {}", g.why, g.path)).with_title(
            format!("Suspicious process {}{}", g.comm, if g.deleted { ": executable deleted" } else { "" }),
        ));
    }
    out.check(CheckResult::ok(
        "processes",
        format!(
            "{total} processes, {suspicious} suspicious{}{}",
            if own_count > 0 { format!(", {own_count} of QMOI's own not counted") } else { String::new() },
            if hidden > 0 { format!(", {hidden} not inspectable without root") } else { String::new() }
        ),
    ));
    out.metric("qmoi_security_suspicious_processes", &[], suspicious as f64);
    out.detail(
        "processes",
        json!({
            "total": total,
            "not_inspectable": hidden,
            "qmoi_own": own_count,
            "suspicious": groups.values().map(|g| json!({"pids": g.pids, "count": g.pids.len(), "process": g.comm, "exe": g.path, "reason": g.why, "level": g.level})).collect::<Vec<_>>(),
        }),
    );
}

/// Kernel modules loaded now that were not at baseline time.
pub fn check_modules(cfg: &ModulesConfig, base: &mut HostBaseline, learned: &mut bool, out: &mut Collected) {
    let text = match std::fs::read_to_string(cfg.file.as_str()) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.check(CheckResult::ok(
                "kernel_modules",
                format!("not available: no {} (a kernel without modules, or a container)", cfg.file),
            ));
            return;
        }
        Err(e) => {
            out.check(qmoi_core::runner::unreadable("kernel_modules", cfg.file.as_str(), e));
            return;
        }
    };
    let now: BTreeSet<String> = text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect();
    let known = base.modules.get_or_insert_with(|| {
        *learned = true;
        now.clone()
    });
    let new: Vec<&String> = now.iter().filter(|m| !known.contains(*m)).collect();
    for m in &new {
        out.check(
            CheckResult::new(
                format!("module:{m}"),
                cfg.level.status(),
                format!("kernel module '{m}' loaded since the baseline"),
            )
            .with_title(format!("Unexpected kernel module {m}")),
        );
    }
    out.check(CheckResult::ok(
        "kernel_modules",
        format!("{} modules loaded, {} new since the baseline", now.len(), new.len()),
    ));
    out.metric("qmoi_security_new_kernel_modules", &[], new.len() as f64);
    out.detail("kernel_modules", json!({"loaded": now.len(), "new": new}));
}
