//! `/proc/<pid>/stat` and `statm`, clock ticks and page size: the one reader every crate
//! uses. Paths take the proc root as a parameter, so the parser is tested against fixture
//! trees (as Prometheus' procfs library is) and not only against this machine.

use std::path::Path;
use std::sync::OnceLock;

/// The fields QMOI reads from `/proc/<pid>/stat` (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidStat {
    /// The command name (`comm`): up to 15 bytes, any characters, `)` included.
    pub comm: String,
    /// `R`, `S`, `D`, `Z`, `T`, …
    pub state: char,
    pub ppid: u32,
    /// User and system CPU time in clock ticks ([`ticks_per_second`]).
    pub utime: u64,
    pub stime: u64,
    pub num_threads: u64,
    /// Start time after boot in clock ticks: with the pid, a process's identity.
    pub starttime: u64,
    /// Resident set in pages ([`page_size`]).
    pub rss_pages: u64,
}

impl PidStat {
    /// Parse the text of a `stat` file; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        // The name is in parentheses and may itself hold ") (": it ends at the last ")".
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text.get(open + 1..close)?.to_string();
        // Fields after the name, from state (field 3 of proc(5)) on.
        let f: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        Some(Self {
            comm,
            state: f.first()?.chars().next()?,
            ppid: u32::try_from(num(1)?).ok()?,
            utime: num(11)?,
            stime: num(12)?,
            num_threads: num(17)?,
            starttime: num(19)?,
            rss_pages: num(21)?,
        })
    }

    /// User plus system CPU time, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime.saturating_add(self.stime)
    }

    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// `<proc_root>/<pid>/stat`: `Ok(None)` when the process is gone (or the file is not a
/// stat file), `Err` when it cannot be read for another reason.
pub fn read_stat(proc_root: &Path, pid: u32) -> std::io::Result<Option<PidStat>> {
    match std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        Ok(text) => Ok(PidStat::parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `/proc/<pid>/stat` of this machine; `None` for a process that is gone or unreadable.
pub fn stat(pid: u32) -> Option<PidStat> {
    read_stat(Path::new("/proc"), pid).ok().flatten()
}

/// Is `pid` alive? A zombie (exited, not yet reaped) is not.
pub fn alive(proc_root: &Path, pid: u32) -> std::io::Result<bool> {
    read_stat(proc_root, pid).map(|s| s.is_some_and(|s| !s.is_zombie()))
}

/// Resident pages from `<proc_root>/<pid>/statm` (its second field).
pub fn statm_resident_pages(proc_root: &Path, pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("statm")).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 when it cannot be read).
pub fn ticks_per_second() -> f64 {
    static T: OnceLock<f64> = OnceLock::new();
    *T.get_or_init(|| nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map_or(100.0, |v| v as f64))
}

/// Bytes per page (`sysconf(_SC_PAGESIZE)`, 4096 when it cannot be read).
pub fn page_size() -> u64 {
    static P: OnceLock<u64> = OnceLock::new();
    *P.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(4096)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture tree: a normal process, one whose name holds ") (" and spaces, a zombie,
    /// and a truncated file.
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            (
                "1",
                "1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 250 120 0 0 20 0 1 0 17 180000000 3200 18446744073709551615",
            ),
            ("42", "42 (a) (b c)) R 7 42 42 0 -1 0 0 0 0 0 9 1 0 0 20 0 12 0 5000 1000 77 0"),
            ("43", "43 (gone) Z 7 43 43 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5001 0 0 0"),
            ("44", "44 (short) S 7"),
        ];
        for (pid, text) in files {
            let p = dir.path().join(pid);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("stat"), format!("{text}\n")).unwrap();
        }
        std::fs::write(dir.path().join("1/statm"), "45000 3200 800 10 0 2000 0\n").unwrap();
        dir
    }

    #[test]
    fn stat_fields_are_read_after_the_last_parenthesis() -> std::io::Result<()> {
        let dir = fixture();
        let root = dir.path();
        let s = read_stat(root, 1)?.unwrap_or_else(|| panic!("pid 1 parses"));
        assert_eq!((s.comm.as_str(), s.state, s.ppid), ("systemd", 'S', 0));
        assert_eq!((s.utime, s.stime, s.cpu_ticks()), (250, 120, 370));
        assert_eq!((s.num_threads, s.starttime, s.rss_pages), (1, 17, 3200));
        let odd = read_stat(root, 42)?.unwrap_or_else(|| panic!("pid 42 parses"));
        assert_eq!((odd.comm.as_str(), odd.state, odd.ppid), ("a) (b c)", 'R', 7));
        assert_eq!((odd.cpu_ticks(), odd.num_threads, odd.starttime, odd.rss_pages), (10, 12, 5000, 77));
        assert_eq!(read_stat(root, 44)?, None, "a truncated file is not a stat");
        assert_eq!(read_stat(root, 99)?, None, "a process that is gone");
        assert!(alive(root, 1)? && alive(root, 42)?);
        assert!(!alive(root, 43)?, "a zombie is not alive");
        assert!(!alive(root, 99)?);
        assert_eq!(statm_resident_pages(root, 1), Some(3200));
        assert_eq!(statm_resident_pages(root, 42), None);
        Ok(())
    }

    #[test]
    fn this_process_reads_as_itself() {
        let me = stat(std::process::id()).unwrap_or_else(|| panic!("own stat"));
        assert!(matches!(me.state, 'R' | 'S'), "{me:?}");
        assert!(me.num_threads >= 1 && me.rss_pages > 0, "{me:?}");
        assert!(ticks_per_second() >= 1.0 && page_size() >= 4096);
    }
}
